"""End-to-end tests: the real etcdctl against our server, and crash safety."""

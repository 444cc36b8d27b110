"""Raft clustering: multi-member clusters of the server under test, their leaders, crashes, partitions and members."""

"""``python -m pyetcd_fast``: the same as the ``pyetcd`` command."""

from pyetcd_fast.etcdmain.main import main

if __name__ == "__main__":
    main()

"""The boundary and what runs beyond it: the sandbox (namespaces, cgroups, file view, limits), the
plain-data wire codec, and the in-sandbox shell server (shell.py, imported only by sandbox.py)."""

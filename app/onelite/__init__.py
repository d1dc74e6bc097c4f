"""onelite: an embedded OpenNebula-compatible cloud (oned's XML-RPC API, SQLite, a dummy hypervisor)."""

"""econe: an Amazon EC2 Query API for OpenNebula clouds."""

__version__ = "0.1.0"

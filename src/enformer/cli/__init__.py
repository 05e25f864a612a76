"""The ``enformer`` command line: thin wrappers that parse, call the library, and report."""

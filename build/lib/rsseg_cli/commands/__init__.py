"""One module per command: a typed options object (validated when it is built, i.e. when the command line is
parsed) and `run(options)`, which calls the library and prints the summary.

rsseg_cli.cli builds the options from flags; nothing else in the package imports these modules, and they do
not import each other (the demo composes the library functions the other commands call).
"""

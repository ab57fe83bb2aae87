"""Config review: compare the effective settings of two configs (files or git revisions).

Data flows one way: `sources` reads each side into a Document, `config.load.check_document` resolves
it, `changes` compares two resolutions into a `ConfigDiff`, and `render.diff` prints that.
"""

"""`flyte.io`: `File` and `Dir`, references to data on disk passed between actions by path.

A File or Dir crosses an action boundary as its path alone, so a 1 GB file never counts against
`max_inline_io_bytes`. `from_local` inside an action copies the data into the action's raw-data
folder under the run's logs (Flyte's "upload"), which goes when the run's logs are pruned; outside a
run it refers to the local path as it is. See `flyte_decl.io._file`.
"""

from flyte_decl.io._file import Dir, File

__all__ = ["Dir", "File"]

"""Read (and write) Basenji/Enformer TFRecord files without TensorFlow.

The package's parts, by job:

* :mod:`.records` -- the TFRecord framing, masked CRC-32C checksums and ZLIB/GZIP streams
  (:func:`iter_tfrecord`, :func:`write_tfrecord`, :func:`crc32c`, :func:`masked_crc32c`);
* :mod:`.example` -- ``tf.train.Example`` protocol buffers (:func:`parse_example`,
  :func:`encode_example`);
* :mod:`.basenji` -- the Basenji/Borzoi record layouts (one-hot or base indices),
  ``statistics.json`` and split globs (:func:`read_tfrecords`, :func:`decode_example`,
  :func:`encode_record`, :func:`read_statistics`, :func:`tfrecord_files`).
"""

from .basenji import (
    TFRecordStatistics,
    decode_example,
    encode_record,
    read_statistics,
    read_tfrecords,
    tfrecord_files,
)
from .example import encode_example, parse_example
from .records import crc32c, iter_tfrecord, masked_crc32c, write_tfrecord

__all__ = [
    "TFRecordStatistics",
    "crc32c",
    "decode_example",
    "encode_example",
    "encode_record",
    "iter_tfrecord",
    "masked_crc32c",
    "parse_example",
    "read_statistics",
    "read_tfrecords",
    "tfrecord_files",
    "write_tfrecord",
]

"""Checking an untrusted HDF5 file's structure before any of its data is read.

``check_structure(f)`` walks every link of the file without following any that is not a
plain hard link, and refuses (with a ValueError naming the object):

* external links (they name another file), soft links (a model file has none; they can loop
  or lead out of their group) and user-defined links;
* datasets stored outside the file (external storage), virtual datasets (made of other
  files' datasets) and datasets whose compression filter is not built into HDF5 (HDF5 would
  look for a plugin, that is code, on the disk);
* object and region references, compound, opaque and variable-length (non-string) types,
  in datasets and in attributes;
* a dataset that was declared but never written (it holds no data, only a fill value);
* an object reachable by two paths (a hard-link cycle), more than MAX_OBJECTS objects, more
  than MAX_ATTRIBUTES attributes on one object, and declared sizes beyond the limits.

Only h5py's low-level calls are used on what has not been checked yet: the link itself
(``group.get(name, getlink=True)``), the dataset creation property list (layout, external
storage count, filters), the type and the shape. No data is read here.
"""

from __future__ import annotations

import math

import h5py
import numpy as np

from cnn.saving import limits

MAX_OBJECTS = 100_000
MAX_ATTRIBUTES = 1_000
MAX_ATTRIBUTE_ELEMENTS = 1_000_000
MAX_STRING_BYTES = limits.MAX_CONFIG_CHARS
# HDF5's own filters: deflate (gzip), shuffle, fletcher32, szip, nbit, scale-offset.
BUILT_IN_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32,
                    h5py.h5z.FILTER_SZIP, h5py.h5z.FILTER_NBIT, h5py.h5z.FILTER_SCALEOFFSET}
_LAYOUTS = {h5py.h5d.COMPACT: "compact", h5py.h5d.CONTIGUOUS: "contiguous",
            h5py.h5d.CHUNKED: "chunked"}


def check_structure(f: h5py.File) -> None:
    """Refuse ``f`` (ValueError) unless it holds only groups and datasets of plain types,
    joined by hard links into a tree, stored inside the file."""
    seen: set = set()
    check_attributes(f, "/")
    pending = [f]
    while pending:
        group = pending.pop()
        for name in group:
            path = f"{group.name.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise ValueError(f"{path!r} is an external link to {link.filename}:{link.path}; "
                                 "a model file may not refer to other files")
            if isinstance(link, h5py.SoftLink):
                raise ValueError(f"{path!r} is a soft link to {link.path!r}; a model file holds "
                                 "no links")
            if not isinstance(link, h5py.HardLink):
                raise ValueError(f"{path!r} is a {type(link).__name__}; a model file holds only "
                                 "groups and datasets")
            item = group.get(name)
            if item is None:
                raise ValueError(f"{path!r} cannot be opened (its object header is damaged)")
            address = _address(item)
            if address in seen:
                raise ValueError(f"{path!r} is a second link to an object already in the file "
                                 "(a model file is a tree)")
            seen.add(address)
            if len(seen) > MAX_OBJECTS:
                raise ValueError(f"the file holds more than {MAX_OBJECTS} objects")
            check_attributes(item, path)
            if isinstance(item, h5py.Group):
                pending.append(item)
            elif isinstance(item, h5py.Dataset):
                check_dataset(item, path)
            else:
                raise ValueError(f"{path!r} is a {type(item).__name__}; a model file holds only "
                                 "groups and datasets")


def check_dataset(dataset: h5py.Dataset, path: str) -> None:
    """Stored inside the file, by built-in filters only, of a plain type and a sane shape."""
    plist = dataset.id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise ValueError(f"dataset {path!r} is a virtual dataset (it reads other datasets, "
                         "possibly in other files)")
    if layout not in _LAYOUTS:
        raise ValueError(f"dataset {path!r} has an unknown storage layout {layout}")
    if plist.get_external_count():
        raise ValueError(f"dataset {path!r} keeps its data in external files")
    for index in range(plist.get_nfilters()):
        code = plist.get_filter(index)[0]
        if code not in BUILT_IN_FILTERS:
            raise ValueError(f"dataset {path!r} uses the compression filter {code}, which is "
                             "not built into HDF5 (it would be loaded as a plugin)")
    check_type(dataset.dtype, f"dataset {path!r}")
    shape = dataset.shape
    if shape is None or len(shape) > limits.MAX_RANK:
        raise ValueError(f"dataset {path!r} has shape {shape}; at most {limits.MAX_RANK} axes")
    if math.prod(shape) > limits.MAX_PARAMETERS:
        raise ValueError(f"dataset {path!r} declares {math.prod(shape)} elements; at most "
                         f"{limits.MAX_PARAMETERS} are allowed")
    if math.prod(shape) and not dataset.id.get_storage_size():
        raise ValueError(f"dataset {path!r} holds no data (it was declared, never written)")


def check_attributes(item, path: str) -> None:
    """Attributes of plain types and bounded sizes (none is read here)."""
    attrs = item.attrs
    count = attrs.id.get_num_attrs() if hasattr(attrs, "id") else len(attrs)
    if count > MAX_ATTRIBUTES:
        raise ValueError(f"{path!r} has {count} attributes; at most {MAX_ATTRIBUTES}")
    for name in attrs:
        attribute = attrs.get_id(name)
        where = f"attribute {name!r} of {path!r}"
        check_type(attribute.dtype, where)
        shape = attribute.shape
        if shape is None or len(shape) > limits.MAX_RANK or \
                math.prod(shape) > MAX_ATTRIBUTE_ELEMENTS:
            raise ValueError(f"{where} has shape {shape}; at most {MAX_ATTRIBUTE_ELEMENTS} "
                             "elements")


def check_type(dtype: np.dtype, where: str) -> None:
    """Numbers (bool, int, uint, float) or strings; never references or structures."""
    if h5py.check_ref_dtype(dtype) is not None:
        raise ValueError(f"{where} holds HDF5 references (a model file holds none)")
    if dtype.kind in "biuf":
        return
    string = h5py.check_string_dtype(dtype)
    if string is not None:
        if string.length is not None and string.length > MAX_STRING_BYTES:
            raise ValueError(f"{where} holds strings of {string.length} bytes; at most "
                             f"{MAX_STRING_BYTES}")
        return
    raise ValueError(f"{where} has the type {dtype}; it should hold numbers or strings "
                     "(a model file holds no other types)")


def _address(item) -> tuple:
    info = h5py.h5o.get_info(item.id)
    return info.fileno, info.addr

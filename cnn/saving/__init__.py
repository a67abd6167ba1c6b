"""Saving and loading models: our HDF5 format (``h5_format``), the original implementation's
files (``seed_format``) and the safe reading of untrusted files (``model_file``). This process
only writes HDF5 (``hdf5_writer``, which imports h5py on the first write); files are read in
a separate reading process.

Importing this package registers ``save_model`` / ``load_model`` with ``cnn.models.seam``
(``Model.save`` and ``from cnn.models import load_model`` use them)."""

from cnn.models import seam
from cnn.saving.h5_format import load_model, save_model
from cnn.saving.model_file import ModelFileError
from cnn.saving.weights_file import load_weights, save_weights

seam.register_saving(save_model, load_model)
seam.register_weights_io(save_weights, load_weights)
for _name, _value in (("load_model", load_model), ("save_model", save_model),
                      ("ModelFileError", ModelFileError)):
    seam.register_export(_name, _value)

__all__ = ["load_model", "save_model", "ModelFileError"]

"""Training on many processes and machines with MPI, the engine clusters already launch.

A script calls ``cnn.distributed.init()`` once; outside ``mpiexec`` that is a no-op and the
script runs as one process. Started as ``mpiexec -n 4 python train.py`` (or
``python -m mpi4py train.py``), every rank runs the same script and ``fit``, ``evaluate`` and
``predict`` span all ranks. Needs the ``[mpi]`` extra: ``pip install "cnn[mpi]"``.
"""

from cnn.distributed.flat import FlatBuffer
from cnn.distributed.world import (MPIWorld, SingleProcess, collective_timeout, init,
                                   install_abort_hook, is_chief, is_initialized,
                                   launched_by_mpi, rank, size, world)

__all__ = ["init", "rank", "size", "is_chief", "is_initialized", "world", "launched_by_mpi",
           "install_abort_hook", "collective_timeout", "MPIWorld", "SingleProcess", "FlatBuffer"]

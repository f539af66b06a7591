"""(being written by a helper: Photon-HDF5 read/write)"""

FORMATS: list = []


def write_photon_hdf5(path, stream):
    raise NotImplementedError

"""(being written by a helper: PHU/PHD/THD histogram files)"""

FORMATS: list = []


class Histograms:
    pass


def read_histograms(path):
    raise NotImplementedError

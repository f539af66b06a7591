"""(being written)"""

FORMATS: list = []

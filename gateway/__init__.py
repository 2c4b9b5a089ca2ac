"""dit-gateway: the file-exchange gateway of the NHS Doctors in Training interface."""

__version__ = "0.1.0"

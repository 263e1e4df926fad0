"""Device model: the port-I/O bus and the devices on it (the part QEMU plays beside KVM).

Devices know nothing about engines: the monitor hands them port accesses.
"""

from dbt.devices.bus import PortBus, PortDevice
from dbt.devices.debugexit import DebugExit
from dbt.devices.uart import Uart16550

__all__ = ["DebugExit", "PortBus", "PortDevice", "Uart16550"]

"""The 8259A pair and the 8254 channel 0, driven through their ports as a kernel would."""

from dbt.devices.pic import PicPair
from dbt.devices.pit import Pit8254


def initialised_pics(mask_master=0xFE, mask_slave=0xFF) -> PicPair:
    pics = PicPair()
    for port, value in ((0x20, 0x11), (0xA0, 0x11), (0x21, 0x20), (0xA1, 0x28), (0x21, 4),
                        (0xA1, 2), (0x21, 1), (0xA1, 1), (0x21, mask_master),
                        (0xA1, mask_slave)):
        pics.io_write(port, 1, value)
    return pics


def test_irq0_is_delivered_at_the_programmed_vector_until_eoi():
    pics = initialised_pics()
    assert not pics.pending()
    pics.raise_irq(0)
    assert pics.pending()
    assert pics.acknowledge() == 0x20
    pics.raise_irq(0)
    assert not pics.pending(), "in service: the next IRQ 0 waits for EOI"
    pics.io_write(0x20, 1, 0x20)  # non-specific EOI
    assert pics.acknowledge() == 0x20


def test_masks_priorities_and_the_cascade():
    pics = initialised_pics(mask_master=0x00, mask_slave=0x00)
    pics.raise_irq(1)
    pics.raise_irq(9)  # on the slave, through the master's IRQ 2
    assert pics.acknowledge() == 0x21, "IRQ 1 beats the cascade"
    pics.io_write(0x20, 1, 0x61)  # specific EOI for IRQ 1
    assert pics.acknowledge() == 0x29
    pics.io_write(0x21, 1, 0xFF)
    pics.raise_irq(3)
    assert not pics.pending()
    assert pics.io_read(0x21, 1) == 0xFF
    pics.io_write(0x20, 1, 0x0A)  # OCW3: read IRR
    assert pics.io_read(0x20, 1) & 0x08


def test_pit_mode2_raises_one_irq_per_period_and_counts_down():
    fired = []
    pit = Pit8254(lambda: fired.append(pit.tick))
    pit.io_write(0x43, 1, 0x34)  # channel 0, lobyte/hibyte, mode 2
    pit.io_write(0x40, 1, 100)
    pit.io_write(0x40, 1, 0)
    assert pit.next_expiry() == 100
    pit.advance(40)
    pit.io_write(0x43, 1, 0x00)  # latch
    assert pit.io_read(0x40, 1) | pit.io_read(0x40, 1) << 8 == 60
    pit.advance(100)
    pit.advance(250)
    assert fired == [100, 250] and pit.next_expiry() == 300


def test_pit_mode0_fires_once():
    fired = []
    pit = Pit8254(lambda: fired.append(pit.tick))
    pit.io_write(0x43, 1, 0x30)
    pit.io_write(0x40, 1, 10)
    pit.io_write(0x40, 1, 0)
    pit.advance(1000)
    assert fired == [1000] and pit.next_expiry() is None

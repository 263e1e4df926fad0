"""dbt: run and study x86 guest code under interpretation, binary translation and trap-and-emulate."""

__version__ = "0.1.0"

"""Building Verilog, running simulators, and the dcim command line."""

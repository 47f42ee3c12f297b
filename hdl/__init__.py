"""dcim.hdl."""

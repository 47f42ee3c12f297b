"""dcim.verif."""

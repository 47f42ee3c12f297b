"""dcim.synth."""

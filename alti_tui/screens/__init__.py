"""Modal screens: help, method picker, sentence input."""

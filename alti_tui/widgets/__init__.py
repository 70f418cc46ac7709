"""The explorer's panels."""

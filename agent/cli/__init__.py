"""The ``consentry`` command line (click): ``main.py`` holds the group, sub-groups live beside it."""

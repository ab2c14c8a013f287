"""Discrete and black-box prompt search, and hybrids that turn a found prompt into a soft one."""

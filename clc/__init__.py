"""clc package."""

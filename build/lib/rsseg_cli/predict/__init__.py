"""Prediction over whole scenes: streaming sliding-window inference and its outputs."""

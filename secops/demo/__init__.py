"""The demo: a generated sample election folder and a scripted tour."""

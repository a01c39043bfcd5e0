"""Running parts of an environment on hosts other than the control plane's."""

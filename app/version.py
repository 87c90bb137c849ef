"""The panel's version: shown in the page footer, written into submission manifests, and the
package version (pyproject.toml reads it)."""

VERSION = "0.1.0"

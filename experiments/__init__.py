"""The paper recipes, one module per paper (README.md here). setup.cfg installs this folder as the package
`chroma.experiments`, so `chroma reproduce nampouri` finds its recipe by import, from a wheel as from a checkout."""

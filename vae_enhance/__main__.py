"""`python -m vae_enhance ...` runs the same CLI as the `vae-enhance` console script."""

import sys

from vae_enhance.cli import main

sys.exit(main())

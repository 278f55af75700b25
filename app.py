"""HRNet Explorer's web app in a checkout — ``python app.py [--host H] [--port P] [--share] [--models DIR]`` — and
the Hugging Face Spaces entry point (``app_file: app.py``). The app lives in the package (``hrnet_explorer.app``),
so an installed wheel runs it as ``hrnet-explorer app`` or ``python -m hrnet_explorer.app``; this file only
builds the demo at module level, where ``gradio app.py`` reload mode and Spaces look for it, and starts it.
"""

from __future__ import annotations

from hrnet_explorer.app import build, main

demo = build()  # module level, so `gradio app.py` reload mode and Spaces find it

if __name__ == "__main__":
    main(demo=demo, prog="app.py")

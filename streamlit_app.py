"""The net2fair comparison viewer, for ``streamlit run streamlit_app.py -- --model M``.

A thin entry point: the page itself ships inside the package (``net2fair/viewer_page.py``,
which ``net2fair view`` runs), so an installed wheel has it too. It is run afresh on every
Streamlit rerun, as Streamlit runs any page script.
"""

import runpy

from net2fair.viewer import PAGE

runpy.run_path(str(PAGE), run_name="__main__")

"""MedLens dashboard: `streamlit run dashboard/app.py`."""

import streamlit as st

st.set_page_config(page_title="MedLens", page_icon=":material/biotech:", layout="wide")

pages = [
    st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/viewer.py", title="Viewer", icon=":material/image_search:",
            url_path="viewer"),
    st.Page("views/explain.py", title="Explain", icon=":material/visibility:",
            url_path="explain"),
    st.Page("views/zoo.py", title="Model zoo", icon=":material/inventory_2:", url_path="zoo"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/fact_check:",
            url_path="evaluate"),
]
with st.sidebar:
    st.caption(":material/info: Research and teaching; **not for diagnosis**.")
st.navigation(pages).run()

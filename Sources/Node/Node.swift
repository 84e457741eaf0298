// Module Node: see DESIGN.md §3.

// Module Transport: see DESIGN.md §3.

// Module Protocol: see DESIGN.md §3.

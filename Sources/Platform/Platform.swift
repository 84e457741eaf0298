// Module Platform: see DESIGN.md §3.

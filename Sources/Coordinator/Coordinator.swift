// Module Coordinator: see DESIGN.md §3.

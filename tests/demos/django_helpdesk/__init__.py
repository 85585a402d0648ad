"""End-to-end tests of the Django helpdesk demo, stage by stage, under real servers."""

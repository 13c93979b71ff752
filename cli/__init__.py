"""duge-lora's command line: a typer + rich front end over the duge_lora library."""

"""The network-namespace lab: Ultra Monkey style LVS farms built from ``netns-lab/*.toml``.

``topology`` reads and checks a scenario, ``builder`` wires its namespaces, ``runner`` starts and
stops its programs (``state`` records them), ``client`` sends traffic, ``trace`` follows one
exchange hop by hop, ``show`` draws and prints. ``pylvs lab`` (pylvs.cli.lab) is the command.
"""

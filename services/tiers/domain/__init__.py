"""Pure rules of the tiers service, no I/O: the use cases in ``service`` gather the facts, these decide.

- ``tiers``     the program's ladder, the qualifying value of a rolling window and the one tier evaluation
- ``segments``  RFM scores, value classes, lifecycle, CLV and the Pareto share (docs/segments.md)
- ``figures``   the dashboard's figures: ISO weeks and their points, the Pareto curve
"""

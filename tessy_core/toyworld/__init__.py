"""A small trained model world in which TESSY's claim can be observed on CPU.

A teacher LM solves generated programming problems in a terse style; a student LM solves fewer of
them in a chatty style. Both share the wording of the actual work (approach, edge cases, plan), so
the only systematic difference between their thinking is style, and the labels are known exactly.
Entry point: `tessy_core.toyworld.build.build_world`.
"""

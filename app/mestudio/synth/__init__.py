"""mestudio.synth"""

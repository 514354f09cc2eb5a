"""mestudio.spotting"""

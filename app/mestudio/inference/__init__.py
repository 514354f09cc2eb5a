"""mestudio.inference"""

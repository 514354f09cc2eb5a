"""mestudio.training"""

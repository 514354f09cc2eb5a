"""mestudio.flow"""

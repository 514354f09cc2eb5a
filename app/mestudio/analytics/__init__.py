"""mestudio.analytics"""

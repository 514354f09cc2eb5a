"""mestudio.gui"""

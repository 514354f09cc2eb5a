"""mestudio.face"""

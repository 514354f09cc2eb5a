"""mestudio.training.datasets"""
